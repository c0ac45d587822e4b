"""Report sections; every module here is imported by :func:`deepprs.report.load_sections`.

Each module defines one :class:`~deepprs.report.base.Section` subclass decorated with
:func:`~deepprs.report.base.register_section`; ``order`` fixes its place in the page.
"""
