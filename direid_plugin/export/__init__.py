"""Deployment formats of trained models (ONNX)."""
