"""simpleim.sdp"""
