"""deepprs.train"""
