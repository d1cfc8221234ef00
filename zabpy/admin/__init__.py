"""zabpy.admin"""
