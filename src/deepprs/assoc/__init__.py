"""deepprs.assoc"""
