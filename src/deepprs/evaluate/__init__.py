"""deepprs.evaluate"""
