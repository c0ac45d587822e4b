"""deepprs.report"""
