"""deepprs.models"""
