"""The integration catalog: network-specific fields, request templates and rendering."""

from postbackd.integrations._catalog import BUILT_IN
from postbackd.integrations._catalog import Catalog
from postbackd.integrations._catalog import load_catalog
from postbackd.integrations._catalog import load_integration
from postbackd.integrations._catalog import load_integration_file
from postbackd.integrations._errors import IntegrationError
from postbackd.integrations._errors import RenderError
from postbackd.integrations._integration import CUSTOM_ID
from postbackd.integrations._integration import Field
from postbackd.integrations._integration import Integration
from postbackd.integrations._integration import RenderedRequest
from postbackd.integrations._integration import RequestTemplate
from postbackd.integrations._macros import EVENT_DATA_PREFIX
from postbackd.integrations._macros import FIELD_PREFIX
from postbackd.integrations._macros import INSTALL_EVENT_NAME
from postbackd.integrations._macros import KNOWN_MACROS
from postbackd.integrations._macros import build_macros
from postbackd.integrations._masking import MASK
from postbackd.integrations._masking import mask_secrets

__all__ = [
    "BUILT_IN",
    "CUSTOM_ID",
    "Catalog",
    "EVENT_DATA_PREFIX",
    "FIELD_PREFIX",
    "Field",
    "INSTALL_EVENT_NAME",
    "Integration",
    "IntegrationError",
    "KNOWN_MACROS",
    "MASK",
    "RenderError",
    "RenderedRequest",
    "RequestTemplate",
    "build_macros",
    "load_catalog",
    "load_integration",
    "load_integration_file",
    "mask_secrets",
]
