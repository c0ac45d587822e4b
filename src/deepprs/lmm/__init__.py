"""deepprs.lmm"""
