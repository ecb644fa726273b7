"""simpleim.client"""
