"""Train: short training runs of the current network, live curves, results and weights."""
from cnnviz.ui.routing import require_app
from cnnviz.ui.train_view import show_train_page

require_app()

show_train_page()
