"""The only part of the library that imports Streamlit: shared widgets and session state."""
