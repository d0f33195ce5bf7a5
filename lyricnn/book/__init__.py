"""The d2lzh-compatible functions of chapter 6: the book's names, signatures and log lines."""
