"""simpleim.transport"""
