"""Raylight's ComfyUI node pack: ComfyUI's KSampler and KSamplerAdvanced on a Raylight cluster.

Install: link or copy this folder into ComfyUI's custom_nodes, and `pip install` the Python
client (client/python of the Raylight repository) into ComfyUI's Python. See README.md.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
