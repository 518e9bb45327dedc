"""Ray Serve endpoint for the champion model."""

from mlauto.serve.app import DEPLOYMENT, ModelServer, MonitorSender, build_app, deploy
from mlauto.serve.validation import InvalidRequest, RequestValidator

__all__ = ["DEPLOYMENT", "InvalidRequest", "ModelServer", "MonitorSender", "RequestValidator", "build_app", "deploy"]
