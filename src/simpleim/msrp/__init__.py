"""simpleim.msrp"""
