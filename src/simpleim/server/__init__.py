"""simpleim.server"""
