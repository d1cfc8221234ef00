"""zabpy.storage"""
