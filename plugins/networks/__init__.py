"""Networks: generators, discriminators and weight initialisation."""
