"""What only training needs: the training loop, metrics and callbacks (never exported)."""
