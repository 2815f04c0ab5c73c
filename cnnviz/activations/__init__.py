"""What a network computes for one real image, for the Feature maps page: :mod:`.images` gives
the pictures (test images of a data set, scikit-learn's photos, checked uploads) and their
conversion to the network's input; :mod:`.capture` records every layer's activation in one
forward pass through the torch.fx graph; :mod:`.receptive_field` works out the region of the
input a position of a map can see; :mod:`.gradcam` draws the class activation map of a trained
network. No module here imports Streamlit."""
