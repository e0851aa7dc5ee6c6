"""The hospital registry: each hospital's name, level and district, and every change to them."""
