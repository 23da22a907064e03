"""The datasets: loading the official files, caches, synthetic stand-ins, batches on the device."""
