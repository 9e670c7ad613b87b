"""One module per lab of :mod:`jaxnn.labs.registry`: its flags (from the recipe's config), the call of its recipe
and what it prints. ``main(argv)`` returns what the recipe returned; :func:`jaxnn.cli.launch` runs it as a program."""
