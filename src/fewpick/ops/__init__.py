"""Array operations shared by every picker: resampling, filters, peaks, thresholds and templates."""
