"""The civil-affairs workspace: server-rendered pages (Jinja2, gettext catalogs) in the service's process."""
