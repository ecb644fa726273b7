"""simpleim.sip"""
