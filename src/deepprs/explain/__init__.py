"""deepprs.explain"""
