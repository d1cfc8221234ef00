"""zabpy.cli"""
