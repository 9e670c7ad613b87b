"""Conversions to and from other frameworks. ``jaxnn.interop.torch`` needs PyTorch; import it explicitly."""
