"""zabpy.testing"""
