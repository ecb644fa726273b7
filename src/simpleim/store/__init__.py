"""simpleim.store"""
