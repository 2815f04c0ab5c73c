"""BatchNorm: its statistics, train vs eval, batch size, γ and β, and what it does to training."""
from cnnviz.ui.batchnorm_view import show_batchnorm_page
from cnnviz.ui.routing import require_app

require_app()

show_batchnorm_page()
