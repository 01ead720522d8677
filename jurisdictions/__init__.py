"""Jurisdiction rules (data) and the engine that decides transfers.

Empty until the jurisdiction issue lands; the share token already routes every share
movement through the one hook the rules will fill.
"""
