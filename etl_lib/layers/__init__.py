"""The lambda architecture's layers: bronze/silver/gold of the batch layer, the speed layer, serving."""
