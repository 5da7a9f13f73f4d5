"""Identity: encryption of identifying values, SLK-581 and keyed pseudonyms.

May import `cldx.standard`, `cldx.store` and `cldx.access`.
"""
