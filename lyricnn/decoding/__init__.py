"""From a trained model to text: generation and scoring."""
