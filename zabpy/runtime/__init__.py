"""zabpy.runtime"""
