package engine

// names are the catalog's words for ids, for the admin's lists: read from
// the snapshot in memory, no backend call.

// names returns the name of store storeID and the title of product skuID
// ("" for an id the catalog does not have, or an empty one).
func (c *catalogSnap) names(storeID, skuID string) (store, title string) {
	if s := c.stores[storeID]; s != nil {
		store = s.Name
	}
	if p := c.products[skuID]; p != nil {
		title = p.Title
	}
	return store, title
}

// guideName returns the name of guide guideID ("" when unknown).
func (c *catalogSnap) guideName(guideID string) string {
	if g := c.guides[guideID]; g != nil {
		return g.Name
	}
	return ""
}
