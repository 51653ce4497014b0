"""transferkit studio: a local web app to collect examples, train, try and export a classifier.

``transferkit studio`` serves it; the page (``static/``) needs no build step and no network.
"""
