"""Export: the research extract and report files.

May import `cldx.store`, `cldx.identity`, `cldx.disclosure` and `cldx.analysis`.
"""
