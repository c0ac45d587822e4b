"""deepprs.phenotypes"""
