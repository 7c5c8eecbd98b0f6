"""Promotions: pools of promo codes the shop uploads, each code handed to one journey path at most once."""
