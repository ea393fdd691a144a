"""`{% module_import_map %}`: see games.static_modules."""

from django import template
from django.utils.safestring import SafeString

from games.static_modules import import_map_tag

register = template.Library()


@register.simple_tag
def module_import_map() -> SafeString:
    """The import map of the hashed ES modules; put it in <head>, before any module script."""
    return import_map_tag()
