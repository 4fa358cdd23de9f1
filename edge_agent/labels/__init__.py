"""Labels on the edge: kinds as data, SVG/PNG/ZPL rendering, printers and a print queue.

`kinds` (what a label says), `code128` (python-barcode symbols and their ZPL twin),
`render` and `zpl` (output formats), `printers` (TCP 9100, serial), `queue` (a
persisted print queue that prints each job once), `cli` (`erp labels ...`).
"""
