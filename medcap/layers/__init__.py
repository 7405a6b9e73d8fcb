"""The papers' ideas as reusable Keras layers."""
