"""Connections: the network drawn as the graph it is, with residual additions, dense
concatenations and Inception paths."""
from cnnviz.ui.graph_view import show_graph_page
from cnnviz.ui.routing import require_app

require_app()

show_graph_page()
