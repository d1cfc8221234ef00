"""zabpy.zab"""
