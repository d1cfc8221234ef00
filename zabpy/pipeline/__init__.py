"""zabpy.pipeline"""
