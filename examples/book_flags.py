"""The book's hyperparameter flags, shared by the example scripts."""


def add_book_flags(parser, epochs, period):
    """Add the chapter's hyperparameters with the book's defaults to ``parser``."""
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"training epochs (book: {epochs})")
    parser.add_argument("--steps", type=int, default=35, help="num_steps (book: 35)")
    parser.add_argument("--batch", type=int, default=32, help="batch_size (book: 32)")
    parser.add_argument("--lr", type=float, default=1e2, help="learning rate (book: 1e2)")
    parser.add_argument("--clip", type=float, default=1e-2, help="clipping_theta (book: 1e-2)")
    parser.add_argument("--hidden", type=int, default=256, help="num_hiddens (book: 256)")
    parser.add_argument("--period", type=int, default=period,
                        help=f"report every N epochs (book: {period})")
    parser.add_argument("--pred-len", type=int, default=50,
                        help="characters to generate (book: 50)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (d2l.set_seed)")
    return parser
