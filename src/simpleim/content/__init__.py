"""simpleim.content"""
