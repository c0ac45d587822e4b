"""deepprs.qc"""
