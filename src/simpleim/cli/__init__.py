"""simpleim.cli"""
