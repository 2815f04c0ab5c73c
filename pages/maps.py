"""Feature maps: what every layer of the current network computes on one picture."""
from cnnviz.ui.maps_view import show_maps_page
from cnnviz.ui.routing import require_app

require_app()

show_maps_page()
