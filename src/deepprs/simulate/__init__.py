"""deepprs.simulate"""
